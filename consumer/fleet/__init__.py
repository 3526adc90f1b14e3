"""The fleet: how many workers the queue needs (`policy`), the controller that gets there (`controller`,
`f5-worker scale`), the providers that start and stop workers (`providers/`), and the simulator that plans
capacity with the same policy (`simulate`)."""
