"""What a run left behind, made readable: data, timeline, accounting, Gantt, HTML, layers and
cross-sections. Reads the journal and the traveler; the CLI writes a report after a run ends."""
