"""Cost tracking: the spec's cost model, a project's usage priced per month, budgets."""
