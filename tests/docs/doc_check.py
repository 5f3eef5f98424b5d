"""What the tests/docs scripts share: the report at the end."""


def report(problems, summary):
    """Prints one line per problem, then `summary` with the count; the exit status (1 = any)."""
    for p in problems:
        print(p)
    print(f"{summary}, {len(problems)} problems")
    return 1 if problems else 0
