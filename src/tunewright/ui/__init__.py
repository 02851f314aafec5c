"""`tunewright ui`: a local web app over the run folders (runs, a run's live training, its data,
side-by-side chat, feedback on served traffic, and a form that starts new runs)."""
