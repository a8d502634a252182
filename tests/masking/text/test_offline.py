"""No network: building the analyzer, analyzing, and presidio's own engine make no connection."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_nothing_reaches_for_the_network() -> None:
    # An audit hook sees every socket connection and DNS lookup the process makes.
    script = textwrap.dedent(
        """
        import sys
        events = []
        def hook(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
                events.append(event)
        sys.addaudithook(hook)
        from masking.text.analyzer import text_analyzer
        a = text_analyzer()
        a.analyze("邮箱zhang@example.com，电话13800001234")
        # presidio's predefined recognizers, as the benchmark runs them: its
        # e-mail recognizer asks tldextract, which must use its snapshot.
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}])
        reg = RecognizerRegistry()
        reg.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
        reg.remove_recognizer("SpacyRecognizer")
        engine = AnalyzerEngine(registry=reg, nlp_engine=nlp)
        found = engine.analyze(text="mail me: john.smith@example.co.uk", language="en")
        assert any(r.entity_type == "EMAIL_ADDRESS" for r in found), found
        print("EVENTS", events)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "EVENTS []" in done.stdout, done.stdout + done.stderr
