package apiclient

import (
	"context"

	"depot"
)

// AppendChunk appends data, held in memory by the caller (a verified
// checksummed tus body, in a buffer lent by ChunkBuffer), at offset of
// upload id in one request. It takes no buffer of the pool: the caller
// already holds one, and AppendStream would wait for a second (with every
// buffer held by such callers, for ever). With complete, a chunk that
// reaches end (the upload's total size; -1: unknown) commits the upload in
// the same request. It returns the bytes appended and, when committed, the
// version.
func (c *Client) AppendChunk(ctx context.Context, cl depot.Caller, id string, offset int64, data []byte, end int64, complete bool) (int64, *depot.Object, error) {
	next := offset + int64(len(data))
	if len(data) == 0 {
		if complete && end >= 0 && offset == end { // every byte arrived before: commit
			obj, err := c.Complete(ctx, cl, id, end, "")
			if err != nil {
				return 0, nil, err
			}
			return 0, &obj, nil
		}
		return 0, nil, nil
	}
	final := complete && end >= 0 && next == end
	pos, obj, err := c.append(ctx, cl, id, appendChunk{offset: offset, data: data, final: final, total: end})
	if err != nil {
		return 0, nil, err
	}
	return pos - offset, obj, nil
}
