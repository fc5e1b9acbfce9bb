"""Modal dialogs: help, plan confirmation, errors."""
