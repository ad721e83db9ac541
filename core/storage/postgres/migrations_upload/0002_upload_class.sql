-- The retention class an upload's deletion date comes from (the policy's
-- upload.request decision), '' for records made before it was kept.

ALTER TABLE uploads ADD COLUMN class text NOT NULL DEFAULT '';
