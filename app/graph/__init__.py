"""The model side of TwinGraph: RDF storage, ontologies, validation and SPARQL."""
