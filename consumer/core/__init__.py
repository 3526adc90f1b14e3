"""Settings, the error taxonomy, logs and metrics: what every other role builds on."""
