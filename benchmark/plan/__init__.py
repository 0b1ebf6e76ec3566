"""From a suite name to a checked `SuitePlan`: suite dispatch, the run request, the model loaders, the planner
that resolves manifests into objects, and the suites defined in code (the demo)."""
