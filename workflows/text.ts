// Messages built from other messages: a sentence used inside another loses its final period.
import { describeFailure } from '../common/failures';

/** `text` as a clause of a longer sentence: without its final period. */
export const clause = (text: string): string => text.replace(/\.$/, '');

/** A failure, described as a clause. */
export const failureClause = (err: unknown): string => clause(describeFailure(err));
