"""Private Dovecot (IMAP/POP3) and Postfix instances on loopback for the tests, each with its own
generated configuration and state in a short /tmp folder; the system's /etc/dovecot and /etc/postfix
are never used. Adapted from the recipe in ../shared/servers (RECIPE.md): uid 'mail' owns the
mailboxes, parent folders are o+x, socket paths stay under 108 bytes."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import trustme
from smtp_servers import free_port


def _wait_port(port: int, pid_alive, what: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not pid_alive():
            raise RuntimeError(f"{what} exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(200):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up on port {port}")


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} is not installed: run `make test` as root (it installs the Debian "
                           "packages), or apt-get install dovecot-imapd dovecot-pop3d postfix")
    if os.geteuid() != 0:
        raise RuntimeError(f"the private {tool} instance needs root (CI runs as root)")


class Dovecot:
    def __init__(self, user: str = "bounce@example.test", password: str = "b0unce-Pa55!") -> None:
        require("dovecot")
        self.user, self.password = user, password
        self.second_user = "replies@example.test"     # another account (same password)
        self.dir = Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp"))
        self.ports = {k: free_port() for k in ("imap", "imaps", "pop3", "pop3s")}
        self.proc: subprocess.Popen | None = None
        mail = pwd.getpwnam("mail")
        self.uid, self.gid = mail.pw_uid, mail.pw_gid

    @property
    def conf(self) -> str:
        return str(self.dir / "dovecot.conf")

    def start(self) -> Dovecot:
        d = self.dir
        os.chmod(d, 0o755)
        for sub in ("run", "log", "mail", "tls", "state"):
            (d / sub).mkdir(exist_ok=True)
        os.chown(d / "mail", self.uid, self.gid)
        (d / "log" / "lda.log").touch()
        os.chown(d / "log" / "lda.log", self.uid, self.gid)
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(str(d / "tls" / "ca.pem"))
        leaf.cert_chain_pems[0].write_to_path(str(d / "tls" / "cert.pem"))
        leaf.private_key_pem.write_to_path(str(d / "tls" / "key.pem"))
        self.cafile = str(d / "tls" / "ca.pem")
        (d / "users").write_text("".join(
            f"{u}:{{PLAIN}}{self.password}:{self.uid}:{self.gid}::{d}/mail/{u}\n"
            for u in (self.user, self.second_user)))
        os.chmod(d / "users", 0o644)
        p = self.ports
        (d / "dovecot.conf").write_text(f"""
instance_name = mailnb-test-{d.name}
base_dir = {d}/run
state_dir = {d}/state
protocols = imap pop3
listen = 127.0.0.1
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot.log
auth_verbose = yes
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{d}/tls/cert.pem
ssl_key = <{d}/tls/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
pop3_uidl_format = %08Xu%08Xv
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
postmaster_address = postmaster@example.test
protocol lda {{
  log_path = {d}/log/lda.log
  info_log_path = {d}/log/lda.log
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {p['imap']}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {p['imaps']}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {p['pop3']}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {p['pop3s']}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
        subprocess.run(["dovecot", "-c", self.conf, "-n"], check=True, capture_output=True,
                       timeout=30)
        return self.run()

    def run(self) -> Dovecot:
        """Start the server process (again, after :meth:`halt`: same ports, same mail)."""
        log = open(self.dir / "log" / "stdout", "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf], stdout=log, stderr=log,
                                     start_new_session=True)
        for port in (self.ports["imap"], self.ports["pop3"]):
            _wait_port(port, lambda: self.proc.poll() is None, "dovecot")
        return self

    def halt(self, crash: bool = False) -> None:
        """Stop the server as a restart does (SIGTERM), or at once with every session it serves
        (``crash``: SIGKILL to its process group), keeping its mail and settings."""
        if crash and self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def deliver(self, raw: bytes, folder: str = "INBOX", user: str | None = None) -> None:
        """Put a message into a folder exactly as an MTA does (dovecot-lda)."""
        subprocess.run(["/usr/lib/dovecot/dovecot-lda", "-c", self.conf, "-d", user or self.user,
                        "-m", folder], input=raw, check=True, timeout=30)

    def log(self) -> str:
        p = self.dir / "log" / "dovecot.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postfix:
    """A private Postfix on 127.0.0.1 that delivers example.test to Dovecot (unknown users bounce),
    relays remote.test to a loopback SMTP server (the remote MX), and sends nothing anywhere else.
    Without Dovecot it only relays. ``extra``: main.cf lines added at the end."""

    def __init__(self, dovecot: Dovecot | None, remote_mx_port: int, *, strict: bool = False,
                 extra: str = "") -> None:
        require("postfix")
        self.dovecot = dovecot
        self.remote_mx_port = remote_mx_port
        self.dir = Path(tempfile.mkdtemp(prefix="pf-", dir="/tmp"))
        self.port = free_port()
        self.strict = strict
        self.extra = extra

    def start(self) -> Postfix:
        d, dov = self.dir, self.dovecot
        os.chmod(d, 0o755)
        for sub in ("etc", "spool", "data"):
            (d / sub).mkdir(exist_ok=True)
        shutil.chown(d / "data", "postfix")
        strict = """
smtpd_helo_required = yes
strict_rfc821_envelopes = yes
smtpd_reject_unlisted_sender = no
smtpd_data_restrictions = reject_unauth_pipelining, reject_multi_recipient_bounce
smtpd_forbid_bare_newline = normalize
""" if self.strict else ""
        local = """
virtual_mailbox_domains = example.test
virtual_transport = dovecot
dovecot_destination_recipient_limit = 1
""" if dov is not None else ""
        lda = f"""dovecot    unix  - n n -  - pipe
  flags=DRhu user=mail:mail argv=/usr/lib/dovecot/dovecot-lda -c {dov.conf} -f ${{sender}} -d ${{user}}@${{domain}} -m Bounces
""" if dov is not None else ""
        (d / "etc" / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
syslog_name = postfix-mailnb-test
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
recipient_delimiter = +
{local}
transport_maps = inline:{{ remote.test=smtp:[127.0.0.1]:{self.remote_mx_port} }}
smtp_tls_security_level = none
default_transport = error:outbound delivery disabled in test instance
relay_transport = error:outbound delivery disabled in test instance
smtp_dns_support_level = disabled
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
delay_warning_time = 0
{strict}
{self.extra}""")
        (d / "etc" / "master.cf").write_text(f"""
127.0.0.1:{self.port} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
showq      unix  n - n -  - showq
smtp       unix  - - n -  - smtp
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
{lda}""")
        conf = str(d / "etc")
        subprocess.run(["postfix", "-c", conf, "check"], check=True, timeout=60,
                       capture_output=True)
        subprocess.run(["postfix", "-c", conf, "start"], check=True, timeout=60,
                       capture_output=True)
        _wait_port(self.port, lambda: True, "postfix")
        return self

    def log(self) -> str:
        p = self.dir / "maillog"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.dir / "etc"), "stop"], timeout=60,
                       capture_output=True)
        pidfile = self.dir / "spool" / "pid" / "master.pid"
        deadline = time.time() + 10
        while pidfile.exists() and time.time() < deadline:
            try:
                os.kill(int(pidfile.read_text().strip()), 0)
            except (ProcessLookupError, ValueError):
                break
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgreSQL:
    """A private PostgreSQL from Debian's packages: initdb into a temporary folder as the
    unprivileged 'postgres' user (initdb refuses root), listening on 127.0.0.1 only; no system
    service. Password authentication (scram) for the mailnb user, as a shared server would ask."""

    user, password, database = "mailnb", "pg-Pa55-word!", "mailnb"

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: run `make test` as root (it installs "
                               "the Debian packages), or apt-get install postgresql")
        self.bin = found[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        pg = pwd.getpwnam("postgres")
        self.uid, self.gid = pg.pw_uid, pg.pw_gid

    def _as_postgres(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=True, capture_output=True, timeout=120, **kw)

    def start(self) -> PostgreSQL:
        os.chown(self.dir, self.uid, self.gid)
        pwfile = self.dir / "pw"
        pwfile.write_text("super-" + self.password)
        os.chown(pwfile, self.uid, self.gid)
        self._as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                           "--no-instructions"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\n"
                    "max_connections = 200\n")
        self.run()
        env = {**os.environ, "PGPASSWORD": "super-" + self.password}
        for sql in (f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
                    f"CREATE DATABASE {self.database} OWNER {self.user}"):
            subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", "postgres", "-c", sql], check=True,
                           capture_output=True, env=env, timeout=60)
        return self

    def run(self) -> PostgreSQL:
        """Start the server (again, after :meth:`halt`: same port, same data)."""
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        log = open(self.dir / "log", "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited during start-up: {self.log()[-2000:]}")
            r = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                                str(self.port)], capture_output=True)
            if r.returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError("postgres did not come up")

    def url(self, database: str | None = None) -> str:
        """The URL a user gives (no password in it: that comes from PGPASSWORD)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database or self.database}"

    def new_database(self, name: str) -> str:
        env = {**os.environ, "PGPASSWORD": "super-" + self.password}
        subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                        "postgres", "-d", "postgres", "-c",
                        f"CREATE DATABASE {name} OWNER {self.user}"],
                       check=True, capture_output=True, env=env, timeout=60)
        return self.url(name)

    def halt(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)      # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def log(self) -> str:
        p = self.dir / "log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)
