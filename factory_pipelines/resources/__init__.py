"""Resources: every external system behind a narrow, configurable interface."""
