"""The audit log: the hash chain and its appender (`chain`), and its forensic verification (`verify`)."""
