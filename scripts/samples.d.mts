// Types for scripts/samples.mjs (used from the TypeScript tests).
export declare function cp1251(text: string): Buffer;
export declare function crc32(buf: Buffer): number;
export declare const EMPTY_ZIP: Buffer;
export declare function storedZip(entry: string, data: Buffer, comment?: Buffer): Buffer;
