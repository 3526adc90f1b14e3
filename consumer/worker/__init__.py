"""The worker process: poll loop, one job's life, heartbeat, notifications, health."""
