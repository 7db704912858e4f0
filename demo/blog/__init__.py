"""The demo blog app: authors, categories, articles, and one view per cachewise pattern."""
