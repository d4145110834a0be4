"""The web pages (HTML, JS, CSS); third-party code comes from npm into node_modules here."""
