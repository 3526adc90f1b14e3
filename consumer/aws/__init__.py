"""AWS access: clients, error classification, retries, the queue adapter, the resource spec, the embedded AWS."""
