"""The process and claims model of the source documents: flows, the traveler, the stack model,
the rules and the claims. Pure: no asyncio, no journal, no tools."""
