"""Best-of-N verified generation, LSP-free: several models (and samples) write an Aethel
contract, the parser and the checker judge each one (with the usual repair rounds), and
the ranking says which is right and why. `run.distill` is the one entry point; `scoring`
is the documented ranking; `candidate` is what each answer became."""
