"""Inline-completion scheduling, LSP-free: `scheduler` decides who gets an answer and when;
`cache` (typed-through), `debounce` (typing rhythm) and `generation` (one upstream stream,
reused or closed) are its parts; `requests` holds what it is asked and answers."""
