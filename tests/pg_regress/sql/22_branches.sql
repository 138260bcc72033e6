-- Events as lists of branches (API.md §1): an event may be a list of
-- bodies, each with its own from, to, guard, roles, payload and action.
-- The first branch whose from holds the current state, whose target fits
-- the caller's "to", and whose roles, payload schema and guard pass is
-- taken; when none passes, the first such branch's refusal is the error.
-- fire, a plain UPDATE, can_fire, available_events and the views all
-- follow that rule.
\set SHOW_CONTEXT never
CREATE SCHEMA press;
CREATE TABLE press.articles (id int PRIMARY KEY, status text, reviews int NOT NULL DEFAULT 0);
CREATE FUNCTION press.reviewed(a press.articles, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT a.reviews >= 2 $$;
-- SQLSTATE and message of a statement, or 'ok'.
CREATE FUNCTION press.outcome(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE ROLE press_chief NOLOGIN;
CREATE ROLE press_writer NOLOGIN;
GRANT USAGE ON SCHEMA press TO press_chief, press_writer;
GRANT SELECT, UPDATE ON press.articles TO press_chief, press_writer;

-- submit: a chief publishes a draft at once; anyone else sends it to
-- review. From review it is published once reviewed twice, and goes back
-- to draft otherwise. retract leads to draft or archived (dynamic target),
-- with a branch per source.
SELECT fsm.create_machine('article', '{
  "states": {"draft": {"initial": true}, "review": {}, "published": {}, "archived": {"final": true}},
  "events": {
    "submit": [
      {"from": "draft", "to": "published", "roles": ["press_chief"]},
      {"from": "draft", "to": "review"},
      {"from": "review", "to": "published", "guard": "press.reviewed"},
      {"from": "review", "to": "draft"}
    ],
    "retract": [
      {"from": "published", "to": ["draft", "archived"]},
      {"from": "review", "to": "archived"}
    ],
    "archive": {"from": "draft", "to": "archived"}
  }
}');
SELECT fsm.attach('press.articles', 'status', 'article') IS NOT NULL AS attached;

-- The normalized definition keeps the lists; the views show one row per
-- (event, from, to).
SELECT jsonb_pretty(fsm.machine_definition('article') -> 'events' -> 'submit');
SELECT event, from_state, to_state FROM fsm.transitions WHERE machine = 'article'
 ORDER BY event, from_state, to_state;
SELECT fsm.to_mermaid('article');

INSERT INTO press.articles (id) VALUES (1), (2), (3), (4);

-- A chief takes the first branch.
SET ROLE press_chief;
SELECT fsm.fire('press.articles', 2, 'submit') AS chief_submits;
RESET ROLE;
-- A writer is no press_chief: the first branch does not pass, the second
-- (to review) is taken.
SET ROLE press_writer;
SELECT fsm.fire('press.articles', 1, 'submit') AS writer_submits;
-- From review: not reviewed yet, so the guarded branch does not pass and
-- the last one sends it back to draft.
SELECT fsm.fire('press.articles', 1, 'submit') AS unreviewed;
SELECT fsm.fire('press.articles', 1, 'submit') AS again_to_review;
UPDATE press.articles SET reviews = 2 WHERE id = 1;
SELECT fsm.fire('press.articles', 1, 'submit') AS reviewed;
RESET ROLE;

-- Each move is one history row under the event's name.
SELECT event, from_state, to_state FROM press.articles_status_history
 WHERE entity_key IN (1, 2) ORDER BY entity_key, id;

-- A dynamic target picks the branch it fits: from published, retract
-- needs "to"; from review its only target is archived.
SELECT press.outcome($$SELECT fsm.fire('press.articles', 2, 'retract')$$) AS retract_without_to;
SELECT press.outcome($$SELECT fsm.fire('press.articles', 2, 'retract', "to" => 'review')$$) AS retract_to_review;
SELECT fsm.fire('press.articles', 2, 'retract', "to" => 'draft') AS retract_to_draft;
UPDATE press.articles SET status = 'review' WHERE id = 3;
SELECT press.outcome($$SELECT fsm.fire('press.articles', 3, 'retract', "to" => 'draft')$$) AS review_retract_to_draft;
SELECT fsm.fire('press.articles', 3, 'retract') AS review_retract;

-- Not allowed from this state: no branch leads from archived (55000).
SELECT press.outcome($$SELECT fsm.fire('press.articles', 3, 'submit')$$) AS from_archived;

-- When no branch passes, the first one's refusal is the error. Only one
-- branch leads from review to published, and it is guarded.
UPDATE press.articles SET status = 'review' WHERE id = 4;
SELECT press.outcome($$UPDATE press.articles SET status = 'published' WHERE id = 4$$) AS unreviewed_update;
SELECT status FROM press.articles WHERE id = 4;
-- A plain UPDATE back to draft takes the unguarded branch.
UPDATE press.articles SET status = 'draft' WHERE id = 4;
SELECT event, from_state, to_state FROM press.articles_status_history
 WHERE entity_key = 4 ORDER BY id;
-- draft -> published directly needs press_chief: the only branch that
-- makes that move says so (42501).
SET ROLE press_writer;
SELECT press.outcome($$UPDATE press.articles SET status = 'published' WHERE id = 4$$) AS writer_publishes;
RESET ROLE;
SET ROLE press_chief;
UPDATE press.articles SET status = 'published' WHERE id = 4;
RESET ROLE;
SELECT status FROM press.articles WHERE id = 4;

-- Asking: available_events has one row per event, with every state its
-- branches lead to from here, and the reason of the first branch when
-- none passes.
INSERT INTO press.articles (id) VALUES (5);
SELECT * FROM fsm.available_events('press.articles', 5);
UPDATE press.articles SET status = 'review' WHERE id = 5;
SELECT * FROM fsm.available_events('press.articles', 5);
SELECT fsm.can_fire('press.articles', 5, 'submit') AS submit_from_review;

-- A branch's payload schema is one of its requirements: a payload that
-- fails it passes the branch by. "file" with a reference goes to the
-- archive, without one to review; a refusal of both is the first's.
SELECT fsm.create_machine('article_note', '{
  "states": {"draft": {"initial": true}, "review": {}, "archived": {"final": true}},
  "events": {"file": [
    {"from": "draft", "to": "archived", "payload": {"type": "object", "required": ["reference"]}},
    {"from": "draft", "to": "review", "payload": {"type": "object"}}],
   "reopen": {"from": "review", "to": "draft"}}}');
CREATE TABLE press.notes (id int PRIMARY KEY, state text);
SELECT fsm.attach('press.notes', 'state', 'article_note') IS NOT NULL AS attached;
INSERT INTO press.notes (id) VALUES (1), (2), (3);
SELECT fsm.fire('press.notes', 1, 'file', '{"reference": "A-7"}') AS with_reference;
SELECT fsm.fire('press.notes', 2, 'file', '{}') AS without_reference;
SELECT press.outcome($$SELECT fsm.fire('press.notes', 3, 'file', '"not an object"')$$) AS neither;
SELECT entity_key, event, to_state, payload FROM press.notes_state_history
 WHERE event IS NOT NULL ORDER BY entity_key;

-- Definitions that break a rule name the branch, and nothing is stored.
SELECT press.outcome($$SELECT fsm.create_machine('broken_article', '{
  "states": {"a": {"initial": true}, "b": {}},
  "events": {"go": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}}')$$) AS unknown_target;
SELECT press.outcome($$SELECT fsm.create_machine('broken_article', '{
  "states": {"a": {"initial": true}, "b": {}},
  "events": {"go": [{"from": "a", "to": "b", "gaurd": "press.reviewed"}]}}')$$) AS misspelt_key;
SELECT press.outcome($$SELECT fsm.create_machine('broken_article', '{
  "states": {"a": {"initial": true}, "b": {}},
  "events": {"go": []}}')$$) AS empty_list;
SELECT press.outcome($$SELECT fsm.create_machine('broken_article', '{
  "states": {"a": {"initial": true}, "b": {}},
  "events": {"go": [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "guard": "press.no_such_guard"}]}}')$$) AS missing_guard;
SELECT count(*) AS stored FROM fsm.machines WHERE name = 'broken_article';
