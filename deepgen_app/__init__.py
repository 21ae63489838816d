"""The Streamlit app's shared code; the pages themselves are in ``pages/``."""
