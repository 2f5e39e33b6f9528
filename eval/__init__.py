"""Offline evaluation: run the real pipeline over gold questions and write readable reports."""
