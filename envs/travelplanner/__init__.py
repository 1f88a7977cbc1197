"""TravelPlanner-v0: a generated travel database, the benchmark's tools, and its evaluator."""
