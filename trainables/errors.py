"""The one exception type for bad user input (files, columns, keys, values)."""


class UserInputError(ValueError):
    """Bad input from the user: the message names the file, key, column or value and what was expected.

    The CLI prints the message as one line and exits with status 2.
    """
