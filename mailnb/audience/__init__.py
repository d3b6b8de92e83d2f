"""Stage 1, who: the recipients read from a table, their addresses checked and de-duplicated, and
everyone excluded (unsubscribed, suppressed, blocked, forgotten) with the reason."""
