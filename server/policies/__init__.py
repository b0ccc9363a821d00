"""AI partners: the policies an experiment defines, and the seats game scenes give them."""
