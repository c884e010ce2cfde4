"""Views: rich terminal tables, plots and the HTML/Markdown report."""
