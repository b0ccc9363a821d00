"""Study definitions and flow: experiment files, scenes, packages, scene progress."""
