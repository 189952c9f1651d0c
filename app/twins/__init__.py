"""Live twins: desired and reported state, commands, jobs, device channels, history."""
