"""Template engines under the module path the Ruvon documentation names."""
