/** The folder `vite build` writes the console into (index.html and assets/); `gatehouse server` serves it. */
export declare const webRoot: string;
