"""Stage 2, what: templates rendered per row, reports' tables and charts, the MIME message as it
goes out, its unsubscribe links and its DKIM signature. Pure: no socket, no journal."""
