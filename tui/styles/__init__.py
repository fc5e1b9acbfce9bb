"""The app's stylesheet (app.tcss): all layout and colour lives there."""
