"""Ray Serve application hosting vLLM engines with the sparse-FP8 plugin (import as `sparse24.serve_app`)."""
