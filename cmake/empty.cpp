// Placeholder translation unit for a module target without sources.
