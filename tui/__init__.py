"""cachescope's terminal UI and command line."""
