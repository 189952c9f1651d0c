"""Events: a durable log in PostgreSQL fanned out to every process (see ``bus``)."""
