-- A keyed hash (blind index) to find a document by a property without
-- reading it in clear: a customer's email. A copy of what the signed body
-- holds; a row found by it is verified like any other.
ALTER TABLE documents ADD COLUMN lookup TEXT;
CREATE INDEX documents_lookup ON documents (kind, lookup);
