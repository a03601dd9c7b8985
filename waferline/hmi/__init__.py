"""The operator HMI: the line and its runs in a browser; commands authenticated, authorized, journaled."""
