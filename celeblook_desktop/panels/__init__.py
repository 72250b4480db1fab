"""The window's panels, one per concern: views (input, output, the message bar), gallery (targets), controls.
They build and lay out widgets only; MainWindow connects them to the engine."""
