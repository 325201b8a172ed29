"""Running the pipeline: profiles, the runner behind run_all.sh, notebook tools."""
