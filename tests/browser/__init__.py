"""End-to-end helpers: WebSocket conversations, audio checks, and real browsers (Chromium
through Playwright, Firefox ESR through WebDriver BiDi with a private PulseAudio)."""
