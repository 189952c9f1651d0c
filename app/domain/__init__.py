"""Plain values shared by every layer: IRIs, validation reports, graph descriptions."""
