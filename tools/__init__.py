"""Developer tools run from the repository root: `python -m tools.import_graph`,
`python -m tools.generate_build`."""
