"""The run engine: process jobs, dispatch, ISA-88 run control, interlocks, the journal, state
rebuild, resume, scrap and remote control. Imports the process model, never the reports."""
