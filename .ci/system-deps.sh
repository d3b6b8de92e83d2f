#!/usr/bin/env bash
# Debian packages the tests need: PostgreSQL (the shared journal; the tests initdb their own),
# Dovecot (the IMAP/POP3 bounce mailbox) and Postfix (real bounces,
# strict SMTP, smtp-sink/smtp-source for the benchmarks), Chromium (the forms in JupyterLab, driven
# by Playwright), SpamAssassin (scores the campaign messages with its local rules) and
# util-linux's unshare (a small private disk for the disk-full tests). Installed when running as root (CI is);
# otherwise listed with the command to install them. Nothing here starts a system service: the
# tests start private instances with their own configuration on loopback ports.
set -euo pipefail
PACKAGES=(dovecot-imapd dovecot-pop3d postfix openssl chromium util-linux spamassassin postgresql)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # no package may start its system service (PostgreSQL's would take port 5432): the tests
    # run their own instances
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null
else
    echo "mailnb's tests need these Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
