"""Protocol front ends of the emulated tools: each serves a tool model over a real transport."""
