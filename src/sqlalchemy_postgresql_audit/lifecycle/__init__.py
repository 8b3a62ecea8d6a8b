"""What keeps an audit trail trustworthy over years: its partitions, retention, redaction keys."""
