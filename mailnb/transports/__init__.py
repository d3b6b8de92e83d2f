"""Where a message goes: a registry of transports (SMTP relay, .eml pickup folder, Microsoft
Graph, direct delivery to each domain's MX), each a connection with the same few methods."""
