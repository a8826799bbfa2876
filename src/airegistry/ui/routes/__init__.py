"""UI routes, one module per page family."""
