"""Zoo recipes: every module here that defines ``RECIPES = [Recipe(...), ...]`` adds models to the zoo."""
