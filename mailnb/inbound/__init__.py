"""What comes back: the bounce and reply mailboxes (IMAP, POP3), delivery reports parsed and
classified by rules that name their source, replies, and unsubscribe requests sent by mail."""
