"""Expression evaluators under the module path the Ruvon documentation names."""
